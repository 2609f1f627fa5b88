"""The node image for the docker provider: a Debian bookworm root made by debootstrap.

`recipe` says what goes in and hashes it, `build` turns a recipe into a docker image, `cli`
exposes `python -m harness image build|status`.
"""
