"""The check plane, in the order data flows: scheduling and dispatch, checkers, the tracker, the live view."""
