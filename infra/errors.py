"""The one error type the infra commands show to a person."""


class InfraError(Exception):
    """A failure that a person can act on.

    The message is printed as a single line without a traceback, so it must say
    what failed and what to do (a port to free, a variable to set, a log to read).
    """
