"""The ``report`` stage, which reads the stages' files only (``tables``, ``plots``,
``page``, ``sections``, ``stage``); the figures of a loaded model are drawn by the
train stage (:mod:`vaebench.figures`). Kept free of imports, so the CLI importing
``ReportError`` does not pay for pandas or the page code."""


class ReportError(ValueError):
    """A metrics file the report cannot read (the message names the file)."""
