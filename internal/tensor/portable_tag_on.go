//go:build tinyllm_portable

package tensor

// forcePortable is true when the package is built with the tag
// tinyllm_portable: the assembly kernels are then never chosen.
const forcePortable = true
