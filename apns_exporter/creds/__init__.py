"""Credentials: provider tokens, client certificates, their files, and the server's chain."""
