"""S3 chores of the end-to-end run, done with boto3 independently of the tools under test.

Usage: e2e-s3.py ENDPOINT mkbucket BUCKET
       e2e-s3.py ENDPOINT size BUCKET [PREFIX]        -> total bytes and object count
       e2e-s3.py ENDPOINT get BUCKET KEY FILE
       e2e-s3.py ENDPOINT put BUCKET KEY FILE
       e2e-s3.py ENDPOINT exists BUCKET KEY           -> exit 0 when it does
       e2e-s3.py ENDPOINT download BUCKET DIR         -> every object, under DIR/KEY
Keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

import os
import sys

import boto3
import botocore


def main():
    endpoint, command, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    if command == "mkbucket":
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    elif command == "size":
        prefix = sys.argv[4] if len(sys.argv) > 4 else ""
        total = count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                total += obj["Size"]
                count += 1
        print(total, count)
    elif command == "get":
        s3.download_file(bucket, sys.argv[4], sys.argv[5])
    elif command == "put":
        s3.upload_file(sys.argv[5], bucket, sys.argv[4])
    elif command == "exists":
        try:
            s3.head_object(Bucket=bucket, Key=sys.argv[4])
        except botocore.exceptions.ClientError:
            sys.exit(1)
    elif command == "download":
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                to = os.path.join(sys.argv[4], obj["Key"])
                os.makedirs(os.path.dirname(to), exist_ok=True)
                s3.download_file(bucket, obj["Key"], to)
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
