; Block openers: `@block` is a construct whose `@body` is a braced block.
; A cursor right after the opening `{`, or inside an empty body, is where a
; whole block is expected.

(function_declaration body: (statement_block) @body) @block
(generator_function_declaration body: (statement_block) @body) @block
(function_expression body: (statement_block) @body) @block
(generator_function body: (statement_block) @body) @block
(arrow_function body: (statement_block) @body) @block
(method_definition body: (statement_block) @body) @block
(class_declaration body: (class_body) @body) @block
(abstract_class_declaration body: (class_body) @body) @block
(interface_declaration body: (interface_body) @body) @block
(enum_declaration body: (enum_body) @body) @block
(internal_module body: (statement_block) @body) @block
(class body: (class_body) @body) @block
(if_statement consequence: (statement_block) @body) @block
(else_clause (statement_block) @body) @block
(for_statement body: (statement_block) @body) @block
(for_in_statement body: (statement_block) @body) @block
(while_statement body: (statement_block) @body) @block
(do_statement body: (statement_block) @body) @block
(try_statement body: (statement_block) @body) @block
(catch_clause body: (statement_block) @body) @block
(finally_clause body: (statement_block) @body) @block
(switch_statement body: (switch_body) @body) @block
(statement_block) @body @block
