// Package boundedfile opens and reads the files of a model folder, which come
// from outside the program and cannot be trusted to be what their names say.
// It opens only regular files, without ever blocking on a named pipe or
// reading from a device, and it reads a file only up to a limit the caller
// states, so a wrong or hostile folder ends in an error naming the file
// rather than a hang or an out-of-memory crash.
package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrTooLarge is wrapped by Read when a file holds more than its limit.
var ErrTooLarge = errors.New("file is larger than its limit")

// Open opens path for reading if it is, after following symlinks, a regular
// file. A named pipe, a device (a config.json linked to /dev/zero), a socket
// or a folder is refused with an error saying what it is. Opening never
// blocks: a pipe with no writer would otherwise stall the open call itself.
func Open(path string) (*os.File, fs.FileInfo, error) {
	// Stat first, so that a device is refused before it is opened at all
	// (opening some devices has side effects).
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := regular(path, st); err != nil {
		return nil, nil, err
	}
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, nil, err
	}
	// The path may have been replaced between Stat and open; the descriptor
	// is what counts.
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := regular(path, st); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// Read returns the contents of the regular file at path, failing with an
// error that wraps ErrTooLarge if it holds more than limit bytes. The limit
// is enforced on the bytes actually read, not only on the size the file
// reports, since files in /proc and files still being written say less.
func Read(path string, limit int64) ([]byte, error) {
	f, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	return ReadAll(path, f, limit)
}

// ReadAll reads r to its end, failing with an error that wraps ErrTooLarge
// once it has given more than limit bytes; name is what the error calls the
// stream (Read uses it for what a gzip stream unpacks to).
func ReadAll(name string, r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(name, limit)
	}
	return data, nil
}

func tooLarge(name string, limit int64) error {
	return fmt.Errorf("%s: %w of %s", name, ErrTooLarge, Size(limit))
}

// Size writes a byte count the way limits are stated: 16 MiB, 100000000 bytes.
func Size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// regular refuses anything but a regular file, naming what it is instead.
func regular(path string, st fs.FileInfo) error {
	m := st.Mode()
	if m.IsRegular() {
		return nil
	}
	var what string
	switch {
	case m.IsDir():
		what = "a folder"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a device"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	default:
		return fmt.Errorf("%s is not a regular file", path)
	}
	return fmt.Errorf("%s is %s, not a regular file", path, what)
}
