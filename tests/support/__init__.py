"""Code the tests share: database access, row factories, request builders, process harnesses.

Test modules and conftest files import shared helpers from here, never from each other.
"""
