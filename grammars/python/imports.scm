; Import statements.
;
; `@import` is the whole statement; `@import.module` the module it imports
; from (the first one captured within an import wins); `@import.name` each
; name it binds (the alias when there is one).

; import os.path  (binds `os`)
(import_statement
  name: (dotted_name . (identifier) @import.name) @import.module) @import

; import numpy as np
(import_statement
  name: (aliased_import
    name: (dotted_name) @import.module
    alias: (identifier) @import.name)) @import

; from .models import User, Group as G
(import_from_statement module_name: (_) @import.module) @import
(import_from_statement name: (dotted_name) @import.name)
(import_from_statement name: (aliased_import alias: (identifier) @import.name))

; from __future__ import annotations
(future_import_statement name: (dotted_name) @import.name) @import
