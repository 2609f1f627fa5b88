"""The cluster's binaries and images: built or fetched into the artifact cache.

sources/  where binaries come from (gomod, release, dir), behind one interface
store     fills the cache from a source, atomically, skipping what is cached
images/   OCI image archives (pause, nginx, coredns, metrics-server, toolbox), built without
          docker or a registry
cli       `artifacts build|list|verify`
"""
