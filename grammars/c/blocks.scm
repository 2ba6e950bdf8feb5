; Block openers: `@block` is a construct whose `@body` is a braced block.
; A cursor right after the opening `{`, or inside an empty body, is where a
; whole block is expected.

(function_definition body: (compound_statement) @body) @block
(if_statement consequence: (compound_statement) @body) @block
(else_clause (compound_statement) @body) @block
(for_statement body: (compound_statement) @body) @block
(while_statement body: (compound_statement) @body) @block
(do_statement body: (compound_statement) @body) @block
(switch_statement body: (compound_statement) @body) @block
(struct_specifier body: (field_declaration_list) @body) @block
(union_specifier body: (field_declaration_list) @body) @block
(enum_specifier body: (enumerator_list) @body) @block
(compound_statement) @body @block
