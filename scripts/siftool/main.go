// The reference SIF reader, built offline from Debian's golang-github-sylabs-sif-dev by
// scripts/test.sh: the tests check the SIF files they write with it.
package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/sylabs/sif/pkg/siftool"
)

func main() {
	root := &cobra.Command{Use: "siftool"}
	if err := siftool.AddCommands(root); err != nil {
		os.Exit(2)
	}
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
