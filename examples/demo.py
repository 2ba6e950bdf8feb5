"""A tiny module to try locode on: `locode complete examples/demo.py:9:16`."""


def add(a, b):
    """Return the sum of a and b."""
    return a + b


def area_of_circle(radius):
    return 3.14159 * 


if __name__ == "__main__":
    print(add(2, 3), area_of_circle(2.0))
