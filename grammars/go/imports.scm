; Import declarations.
;
; `@import` is the whole declaration, and each import in it (a declaration
; may group several: `import ( ... )`); `@import.module` the package path
; (`example.com/app/util`: the package is that folder); `@import.name` the
; name it is bound to when renamed (`u "example.com/app/util"`). Without a
; name the package is imported whole, under its last path segment.

(import_declaration) @import

(import_spec
  name: (package_identifier)? @import.name
  path: [
    (interpreted_string_literal (interpreted_string_literal_content) @import.module)
    (raw_string_literal (raw_string_literal_content) @import.module)
  ]) @import
