//go:build !linux

package main

// keepFreedPages does nothing here: the restart with MADV_FREE for the
// heap's freed pages (freepages_linux.go) is for Linux.
func keepFreedPages() {}
