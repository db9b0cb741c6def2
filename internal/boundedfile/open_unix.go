//go:build unix

package boundedfile

import (
	"os"
	"syscall"
)

// openNonBlocking opens with O_NONBLOCK, so that opening a named pipe that
// replaced a checked regular file returns at once instead of waiting for a
// writer; the descriptor is then checked and closed. For a regular file the
// flag changes nothing.
func openNonBlocking(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
