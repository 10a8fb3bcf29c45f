"""The `bulk-restore` command as a client of a stack, deployed or local: finding the stack
(config), the REST API (api), what is printed (output), the commands (commands) and `watch`."""
