"""The errors the command line reports in one line, without a traceback: each module raises its own subclass
(config.ConfigError, checkpoint.CheckpointError, data.DataError, files.ResultFileError, masks.MaskFileError),
and the command line catches this one class, importing none of those modules (and torch with them) for it."""


class InputError(Exception):
    """A setting, file or dataset is wrong or missing; the message names the key, file or value."""
