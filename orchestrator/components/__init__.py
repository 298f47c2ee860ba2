"""The component definition (the only home of its defaults), the registry service, and apply files."""
