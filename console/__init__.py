"""The staff console: accounts, sign-in with a second factor, roles, the audit log.

Served as an ASGI app meant to be mounted at `/console` (`console.app.create_console_app`);
accounts are also managed from the command line (`python -m console.accounts`).
"""
