"""The console's pages, one module per kind of record; each function takes a
:class:`fmkit.console.context.Ctx` and returns a :class:`fmkit.console.context.Reply`."""
