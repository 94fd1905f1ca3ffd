"""What goes wrong in the store, each with a message fit to show a user as one line."""


class StoreError(Exception):
    """Anything that stops the store from doing what was asked, with a message for the user."""


class StoreBusy(StoreError):
    """Another process kept the database file locked for longer than the store's timeout."""


class QueryRefused(StoreError):
    """``RunStore.query`` only runs a single read-only SELECT statement."""


class ImportConflict(StoreError):
    """An imported run has the ID of a stored run but different contents."""
