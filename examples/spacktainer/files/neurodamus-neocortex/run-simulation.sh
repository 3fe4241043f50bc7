#!/bin/sh
# Example file copied into the neurodamus-neocortex container.
exec special -mpi -python "$@"
