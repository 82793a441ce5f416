-- Ratings only: the review text stays in the app.
select
    id as review_id,
    product_id,
    customer_id,
    rating,
    created_at
from {{ source('shop', 'reviews') }}
