; Use declarations.
;
; `@import` is the whole declaration; `@import.module` the path it imports
; from (the first one captured within an import wins); `@import.name` each
; name it brings into scope (the alias when there is one). Name and module
; captures outside a pattern with `@import` belong to the innermost import
; that contains them.

; use a::b::C;
(use_declaration
  argument: (scoped_identifier
    path: (_) @import.module
    name: (identifier) @import.name)) @import

; use foo;
(use_declaration argument: (identifier) @import.name) @import

; use a::b::C as D;  /  use foo as bar;
(use_declaration
  argument: (use_as_clause
    path: [
      (scoped_identifier path: (_) @import.module)
      (identifier)
    ]
    alias: (identifier) @import.name)) @import

; use a::b::{...};
(use_declaration argument: (scoped_use_list path: (_) @import.module)) @import

; use {a, b};
(use_declaration argument: (use_list)) @import

; use a::b::*;
(use_declaration argument: (use_wildcard (_) @import.module)) @import

; The names inside a `{...}` list, at any depth.
(use_list (identifier) @import.name)
(use_list (scoped_identifier name: (identifier) @import.name))
(use_list (use_as_clause alias: (identifier) @import.name))
(scoped_use_list path: (identifier) @import.name list: (use_list (self)))
(scoped_use_list path: (scoped_identifier name: (identifier) @import.name) list: (use_list (self)))

; extern crate foo;  /  extern crate foo as bar;
(extern_crate_declaration name: (identifier) @import.name !alias) @import
(extern_crate_declaration alias: (identifier) @import.name) @import
