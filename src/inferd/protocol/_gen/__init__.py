"""Generated protobuf modules of the gRPC protocol; regenerate with ``make grpc-stubs``.

``POOL`` is the private descriptor pool they register in (see ``scripts/gen_grpc.sh``).
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
