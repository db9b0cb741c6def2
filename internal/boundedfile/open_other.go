//go:build !unix

package boundedfile

import "os"

// openNonBlocking is a plain open where there are no named pipes to block
// on in the Unix sense; Open has already refused anything but a regular file.
func openNonBlocking(path string) (*os.File, error) {
	return os.Open(path)
}
