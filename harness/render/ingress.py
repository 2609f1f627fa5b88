"""The ingress add-on (the guide's traefik): traefik on ports 80 and 443 of every node.

Other add-ons publish their apps through it with an Ingress of class INGRESS_CLASS.
"""

from __future__ import annotations

# The IngressClass traefik answers for; every Ingress in the lab names it.
INGRESS_CLASS = "traefik"
