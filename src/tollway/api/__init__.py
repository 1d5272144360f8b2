"""HTTP endpoints, one module per family.  Handlers parse, call one function, render."""
