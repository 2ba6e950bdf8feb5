; Names used in code: what the workspace index is asked about.
(identifier) @name
(property_identifier) @name
(shorthand_property_identifier) @name
(type_identifier) @name
