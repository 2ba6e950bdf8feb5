; Includes.
;
; `@import` is the whole directive; `@import.module` the file it includes
; (`util.h`, `sys/types.h`). An include binds no names of its own: the
; file's definitions are what it brings in.

(preproc_include path: (string_literal (string_content) @import.module)) @import
(preproc_include path: (system_lib_string) @import.module) @import
