"""Each chapter's parameter declaration, one module per chapter named after it.

A module `<chapter>.py` here defines PARAMETERS, a tuple of `profiles.Param`; `profiles` imports
every module here on first use, so adding a chapter is adding its notebook and one such module.
The declarations hold no code that runs the chapter: the notebook calls the library itself.
"""
