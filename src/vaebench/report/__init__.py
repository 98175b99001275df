"""The report: figures drawn by the stages that hold a model (``figures``), and the
``report`` stage that reads the stages' files only (``tables``, ``plots``,
``page``, ``sections``, ``stage``). Kept free of imports, so the train stage
importing ``figures`` (and the CLI) does not pay for pandas or the page code."""


class ReportError(ValueError):
    """A metrics file the report cannot read (the message names the file)."""
