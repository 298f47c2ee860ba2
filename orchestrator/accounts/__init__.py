"""Users, their roles and their API tokens: who may do what through the web API and page."""
