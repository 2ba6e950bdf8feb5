; Imports: ES modules, `import x = require()` and CommonJS `require`.
;
; `@import` is the whole statement; `@import.module` the path it imports
; from (`./util`, `lodash`); `@import.name` each name it binds.

; import x, { a, b as c } from './m';  import type { T } from './m';
; import * as ns from './m';  import './m';
(import_statement source: (string (string_fragment) @import.module)) @import

; import x = require('./m');
(import_statement
  (import_require_clause
    (identifier) @import.name
    source: (string (string_fragment) @import.module))) @import

(import_clause (identifier) @import.name)
(import_specifier name: (_) @import.name !alias)
(import_specifier alias: (identifier) @import.name)
(namespace_import (identifier) @import.name)

; const x = require('./m');
(lexical_declaration
  (variable_declarator
    name: [
      (identifier) @import.name
      (object_pattern)
    ]
    value: (call_expression
      function: (identifier) @_require
      arguments: (arguments . (string (string_fragment) @import.module))))
  (#eq? @_require "require")) @import

(variable_declarator
  name: (object_pattern (shorthand_property_identifier_pattern) @import.name)
  value: (call_expression function: (identifier) @_r (#eq? @_r "require")))
