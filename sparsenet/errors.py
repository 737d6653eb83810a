"""The errors the command line reports in one line, without a traceback. Each module raises its own subclass;
the command line catches this class alone, so it imports none of those modules (nor torch with them) to do so."""


class InputError(Exception):
    """A setting, file or dataset is wrong or missing; the message names the key, file or value."""
