; Includes and using-declarations.
;
; `@import` is the whole directive; `@import.module` the file it includes
; (`util.h`) or the namespace it uses (`std`); `@import.name` the name a
; using-declaration brings in (`using std::vector;`).

(preproc_include path: (string_literal (string_content) @import.module)) @import
(preproc_include path: (system_lib_string) @import.module) @import

; using std::vector;
(using_declaration
  (qualified_identifier scope: (_) @import.module name: (identifier) @import.name)) @import

; using namespace std;
(using_declaration "namespace" [(identifier) (qualified_identifier)] @import.module) @import
