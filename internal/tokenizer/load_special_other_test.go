//go:build !unix

package tokenizer

// specialFiles has no cases where there are no Unix pipes and devices.
func specialFiles() []limitCase { return nil }
