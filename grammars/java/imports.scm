; Import declarations.
;
; `@import` is the whole declaration; `@import.module` the package (or
; class, for a static import) it imports from: `com.acme.util` for `import
; com.acme.util.Strings;`; `@import.name` the class or member it names.
; `import com.acme.util.*;` imports the package whole.

(import_declaration
  (scoped_identifier scope: (_) @import.module name: (identifier) @import.name) .) @import

(import_declaration (scoped_identifier) @import.module (asterisk)) @import
(import_declaration (identifier) @import.module (asterisk)) @import
(import_declaration (identifier) @import.name) @import
