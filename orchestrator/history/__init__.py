"""What happened, durably: the recorder (the one writer of results and live state), rollups, retention."""
