package live

// Internals the external tests check.
var (
	ParentTag  = parentTag
	ProtectTag = protectTag
)
