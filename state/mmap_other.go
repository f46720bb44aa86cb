//go:build !linux

package state

// mmapFlags: MAP_POPULATE is Linux's; elsewhere pages fault in as read.
func mmapFlags(string) int { return 0 }
