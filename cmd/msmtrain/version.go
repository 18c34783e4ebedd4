package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/msmtrain/msmtrain/torch"
)

func runVersion(args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "msmtrain %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	cuda := "without CUDA"
	if torch.CUDABuilt() {
		cuda = "with CUDA"
	}
	fmt.Fprintf(stdout, "libtorch %s (%s), %d CPU threads\n", torch.Version(), cuda, torch.NumThreads())
	if core := torch.BLASCore(); core != "" {
		how := "OpenBLAS's choice"
		if v := os.Getenv("OPENBLAS_CORETYPE"); v != "" {
			how = "OPENBLAS_CORETYPE=" + v
		}
		fmt.Fprintf(stdout, "blas: OpenBLAS, %s kernels (%s)\n", core, how)
	}
	fmt.Fprintf(stdout, "devices: %s\n", strings.Join(torch.Devices(), ", "))
	return nil
}
