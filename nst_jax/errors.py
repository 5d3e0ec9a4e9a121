"""Exceptions with messages meant for people: the CLI prints them and exits non-zero."""


class NSTError(Exception):
    """Base class: a problem the user can fix, described in plain words."""


class InputError(NSTError, ValueError):
    """Bad input: an unreadable image, a mask of the wrong size, an unknown option value..."""


class CheckpointError(NSTError):
    """A model checkpoint is missing, corrupt, or was trained for another configuration."""
