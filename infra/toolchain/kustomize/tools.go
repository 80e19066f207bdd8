//go:build tools

// Package tools only records the pinned tool as a dependency of this module.
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
