"""The component definition, the registry service, apply files, and the check a component is probed with
(its defaults are ``core.defaults``)."""
