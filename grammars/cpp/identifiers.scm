; Names used in code: what the workspace index is asked about.
(identifier) @name
(type_identifier) @name
(field_identifier) @name
(namespace_identifier) @name
