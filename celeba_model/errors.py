"""The base class of errors caused by input (data, files, options), shown to users without a traceback."""


class CelebAModelError(Exception):
    """An error in what the user gave us; the message says what and where."""


class ConfigError(CelebAModelError, ValueError):
    """An option or setting that is out of range or unknown."""
