; Block openers: `@block` is a construct whose `@body` is a braced block.
; A cursor right after the opening `{`, or inside an empty body, is where a
; whole block is expected.

(method_declaration body: (block) @body) @block
(constructor_declaration body: (constructor_body) @body) @block
(lambda_expression body: (block) @body) @block
(class_declaration body: (class_body) @body) @block
(record_declaration body: (class_body) @body) @block
(interface_declaration body: (interface_body) @body) @block
(enum_declaration body: (enum_body) @body) @block
(if_statement consequence: (block) @body) @block
(if_statement alternative: (block) @body) @block
(for_statement body: (block) @body) @block
(enhanced_for_statement body: (block) @body) @block
(while_statement body: (block) @body) @block
(do_statement body: (block) @body) @block
(try_statement body: (block) @body) @block
(catch_clause body: (block) @body) @block
(finally_clause (block) @body) @block
(switch_expression body: (switch_block) @body) @block
(synchronized_statement body: (block) @body) @block
(block) @body @block
