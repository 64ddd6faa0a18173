"""Backups, restore and upgrades of the stack (docs/operations.md)."""
