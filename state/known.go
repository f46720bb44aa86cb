package state

// KnownNames returns the known optional columns of SPEC §4 in the order a
// directory user's JSON shows them (a UserRecord's Known order): for a
// store that keeps them by name and renders the JSON itself.
func KnownNames() []string { return append([]string(nil), knownNames[:]...) }
