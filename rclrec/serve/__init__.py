"""Recommendations from a trained run: the library (:class:`Recommender`), the micro-batching
HTTP service behind ``rclrec serve`` and the request limits both share.

``rclrec recommend`` reads JSON lines of histories and writes JSON lines; ``rclrec serve`` is
the HTTP service (:mod:`rclrec.serve.app`, needs ``pip install 'rclrec[serve]'``).
"""

from rclrec.serve.batching import MicroBatcher
from rclrec.serve.recommender import Recommendation, Recommender
from rclrec.serve.request import Limits, Query, RequestError, parse_body, parse_request

__all__ = ["Limits", "MicroBatcher", "Query", "Recommendation", "Recommender", "RequestError",
           "parse_body", "parse_request"]
