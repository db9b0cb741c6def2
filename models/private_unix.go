//go:build unix

package models

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// getuid is a variable so that tests can play another user.
var getuid = os.Getuid

// notPrivate says why the folder fi is not one only the current user can
// write in, or returns "".
func notPrivate(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != getuid() {
		return fmt.Sprintf("owned by user id %d, not by you (user id %d)", st.Uid, getuid())
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Sprintf("writable by others (mode %04o)", m)
	}
	return ""
}
