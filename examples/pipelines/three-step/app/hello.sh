#!/bin/sh
echo "hello from $(uname -m), on $(cat /base.txt)"
