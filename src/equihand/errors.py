"""Errors the user can act on; the CLI prints them without a traceback."""


class UserError(RuntimeError):
    """Bad input (a file, key or value) with a message that names it and what was expected."""


class DataError(UserError):
    """A dataset file that does not match the FreiHAND layout or is corrupt."""


class DownloadError(UserError):
    """A transfer or archive that failed, was corrupted, or is unsafe to extract."""
