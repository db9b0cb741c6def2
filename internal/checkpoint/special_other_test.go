//go:build !unix

package checkpoint

import "testing"

// specialFolders has no cases where there are no Unix pipes and devices.
func specialFolders(t *testing.T, src string) []folderCase { return nil }

// specialFiles has no cases where there are no Unix pipes and devices.
func specialFiles() []specialFile { return nil }
